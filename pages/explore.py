"""Explore: from one next token to a whole sentence (decoding, temperature, logit lens).

A thin page: widgets, Altair charts and calls into ``workbook.explore``. Usable without
signing in. Results are cached per model and settings with ``st.cache_data`` so that moving
one slider does not recompute the other tabs.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from pages import common
from workbook import WorkbookError, explore

EXAMPLES = (
    "This weekend I plan to",
    "In a shocking finding, scientists discovered a herd of unicorns living in",
    "To be or not to",
    "For God so loved the",
)
PROBABILITY_SCALE = alt.Scale(scheme="viridis", domain=[0, 1])


def engine():
    wb = common.get_workbook()
    try:
        return wb.engine()
    except WorkbookError as exc:
        st.error(f"The model could not be loaded: {exc}")
        st.stop()


# --- cached computations (the model is passed unhashed; its name is part of the key) ------


@st.cache_data(show_spinner=False, max_entries=256)
def _distribution(model_name, _lm, phrase, appended, temperature, top_k, top_p, top):
    return explore.next_token_distribution(
        _lm,
        phrase,
        appended=list(appended),
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        top=top,
    )


@st.cache_data(show_spinner=False, max_entries=64)
def _comparison(model_name, _lm, phrase, seed, max_new_tokens, low, high, top_p, num_beams):
    return explore.compare_strategies(
        _lm,
        phrase,
        seed=seed,
        max_new_tokens=max_new_tokens,
        temperatures=(low, high),
        top_p=top_p,
        num_beams=num_beams,
    )


@st.cache_data(show_spinner=False, max_entries=64)
def _lens(model_name, _lm, phrase, top):
    return explore.lens_grid(_lm, phrase, top=top)


# --- charts ------------------------------------------------------------------------------


def distribution_chart(dist: explore.Distribution) -> alt.LayerChart:
    table = dist.table.copy()
    table["cut-off"] = [
        "kept by top-k and top-p"
        if k and p
        else "kept by top-k only"
        if k
        else "kept by top-p only"
        if p
        else "cut by both"
        for k, p in zip(table["in_top_k"], table["in_top_p"], strict=True)
    ]
    order = table["label"].tolist()
    tooltip = [
        alt.Tooltip("token:N"),
        alt.Tooltip("rank:Q"),
        alt.Tooltip("reshaped:Q", title=f"p at T={dist.temperature:g}", format=".2%"),
        alt.Tooltip("probability:Q", title="p at T=1", format=".2%"),
        alt.Tooltip("cut-off:N"),
    ]
    x = alt.X("label:N", sort=order, title="next token (␣ = space)")
    bars = (
        alt.Chart(table)
        .mark_bar()
        .encode(
            x=x,
            y=alt.Y("reshaped:Q", title="probability", axis=alt.Axis(format="%")),
            color=alt.Color(
                "cut-off:N",
                scale=alt.Scale(
                    domain=[
                        "kept by top-k and top-p",
                        "kept by top-k only",
                        "kept by top-p only",
                        "cut by both",
                    ],
                    range=["#2a9d8f", "#8ab17d", "#e9c46a", "#cccccc"],
                ),
            ),
            tooltip=tooltip,
        )
    )
    original = (
        alt.Chart(table)
        .mark_tick(color="black", thickness=2)
        .encode(x=x, y="probability:Q", tooltip=tooltip)
    )
    return (bars + original).properties(height=320)


def token_strip(table: pd.DataFrame, title: str = "") -> alt.LayerChart:
    """Tokens in order, each on a tile coloured by the probability the model gave it."""
    tooltip = [
        alt.Tooltip("step:Q"),
        alt.Tooltip("token:N"),
        alt.Tooltip("probability:Q", format=".2%"),
        alt.Tooltip("rank:Q"),
    ]
    if "chosen_by" in table:
        tooltip.append(alt.Tooltip("chosen_by:N", title="chosen by"))
    base = alt.Chart(table).encode(x=alt.X("step:O", title=title or None), tooltip=tooltip)
    tiles = base.mark_rect().encode(
        color=alt.Color("probability:Q", scale=PROBABILITY_SCALE, title="probability")
    )
    text = base.mark_text(fontSize=13).encode(
        text="label:N",
        color=alt.condition(alt.datum.probability > 0.5, alt.value("black"), alt.value("white")),
    )
    return (tiles + text).properties(height=60)


def beam_chart(nodes: pd.DataFrame, edges: pd.DataFrame) -> alt.LayerChart:
    edges = edges.assign(from_step=edges["step"] - 1)
    status_scale = alt.Scale(
        domain=["prompt", "kept", "finished", "dropped"],
        range=["#264653", "#2a9d8f", "#e76f51", "#bbbbbb"],
    )
    lines = (
        alt.Chart(edges)
        .mark_rule(opacity=0.6)
        .encode(
            x=alt.X("from_step:Q", title="step"),
            x2="step:Q",
            y=alt.Y("from_slot:Q", title="candidate (best first)", scale=alt.Scale(reverse=True)),
            y2="to_slot:Q",
            color=alt.Color("status:N", scale=status_scale),
        )
    )
    tooltip = [
        alt.Tooltip("text:N", title="continuation"),
        alt.Tooltip("score:Q", title="sum of log-probabilities", format=".2f"),
        alt.Tooltip("log_probability:Q", title="token log-probability", format=".2f"),
        alt.Tooltip("status:N"),
    ]
    points = (
        alt.Chart(nodes)
        .mark_circle(size=120)
        .encode(
            x="step:Q",
            y=alt.Y("slot:Q", scale=alt.Scale(reverse=True)),
            color=alt.Color("status:N", scale=status_scale),
            tooltip=tooltip,
        )
    )
    labels = (
        alt.Chart(nodes)
        .mark_text(dx=8, align="left", fontSize=11)
        .encode(x="step:Q", y=alt.Y("slot:Q", scale=alt.Scale(reverse=True)), text="label:N")
    )
    return (lines + points + labels).properties(height=320)


def lens_chart(grid: pd.DataFrame) -> alt.LayerChart:
    columns = grid.sort_values("position")["column"].unique().tolist()
    base = alt.Chart(grid).encode(
        x=alt.X("column:N", sort=columns, title="position (input token)"),
        y=alt.Y("layer:O", sort="descending", title="layer (0 = embeddings)"),
        tooltip=[
            alt.Tooltip("layer:O"),
            alt.Tooltip("input_token:N", title="input token"),
            alt.Tooltip("token:N", title="top prediction"),
            alt.Tooltip("probability:Q", format=".1%"),
            alt.Tooltip("alternatives:N", title="next best"),
        ],
    )
    cells = base.mark_rect().encode(
        color=alt.Color("probability:Q", scale=PROBABILITY_SCALE, title="probability")
    )
    text = base.mark_text(fontSize=10).encode(
        text="label:N",
        color=alt.condition(alt.datum.probability > 0.5, alt.value("black"), alt.value("white")),
    )
    return (cells + text).properties(height=max(240, 18 * grid["layer"].nunique()))


def chart_and_table(chart: alt.TopLevelMixin, table: pd.DataFrame, columns: dict[str, str]) -> None:
    """A chart and its text alternative: the same numbers as a table, one click away.

    Args:
        chart: the Altair chart.
        table: the data the chart draws.
        columns: the table's columns to show -> their headings.
    """
    st.altair_chart(chart, width="stretch")
    shown = [c for c in columns if c in table]
    with st.expander("The numbers in this chart, as a table"):
        st.dataframe(table[shown].rename(columns=columns), hide_index=True)


TOKEN_COLUMNS = {
    "step": "Step",
    "token": "Token",
    "probability": "Probability",
    "rank": "Rank",
    "chosen_by": "Chosen by",
}

# --- the page ----------------------------------------------------------------------------

st.header("Explore: from one next token to a whole sentence")
st.markdown(
    "The notebook scores **one** next token. Question **Q3** asks how to go from there to a "
    "whole sentence. Use this page to watch it happen with the course's model, then answer "
    "Q3 in your own words. Keep these questions in mind:"
)
st.markdown("\n".join(f"- {q}" for q in explore.Q3_PROMPTS))

lm = engine()
model_name = common.get_workbook().settings.model_name

st.session_state.setdefault("explore:phrase", EXAMPLES[0])


def _use_example() -> None:
    # The phrase box gets the example; whatever the student had typed stays one pick away.
    choice = st.session_state.get("explore:example")
    if not choice:
        return
    current = st.session_state.get("explore:phrase", "").strip()
    earlier = st.session_state.setdefault("explore:earlier", [])
    if current and current not in EXAMPLES and current not in earlier:
        earlier.append(current)
    st.session_state["explore:phrase"] = choice
    st.session_state["explore:example"] = None


earlier = st.session_state.get("explore:earlier", [])
st.selectbox(
    "Start from an example" + (" or one of your earlier phrases" if earlier else ""),
    [*EXAMPLES, *earlier],
    index=None,
    placeholder="Pick a phrase to fill the box below…",
    key="explore:example",
    on_change=_use_example,
)
phrase = st.text_input("Phrase", key="explore:phrase")
if not phrase.strip():
    st.info("Type a phrase above to see what the model predicts next.")
    st.stop()

tab_dist, tab_build, tab_compare, tab_lens = st.tabs(
    ["Next-token distribution", "Build a sentence", "Compare strategies", "Logit lens"]
)

with tab_dist:
    cols = st.columns(4)
    temperature = cols[0].slider("Temperature", 0.05, 3.0, 1.0, 0.05, key="explore:temperature")
    top_k = cols[1].slider("top-k", 1, 100, 10, key="explore:top_k")
    top_p = cols[2].slider("top-p", 0.05, 1.0, 0.9, 0.05, key="explore:top_p")
    shown = cols[3].slider("Tokens shown", 5, 50, 20, key="explore:shown")
    try:
        dist = _distribution(model_name, lm, phrase, (), temperature, top_k, top_p, shown)
    except WorkbookError as exc:
        st.error(str(exc))
    else:
        chart_and_table(
            distribution_chart(dist),
            dist.table,
            {
                "rank": "Rank",
                "token": "Token",
                "reshaped": f"Probability (temperature {temperature:g})",
                "probability": "Model's own probability",
                "in_top_k": "Kept by top-k",
                "in_top_p": "Kept by top-p",
            },
        )
        st.caption(
            f"Bars: softmax over all {dist.vocab_size:,} tokens at temperature "
            f"{temperature:g}; black ticks: the model's own probabilities (temperature 1)."
        )
        m = st.columns(3)
        m[0].metric(f"Mass kept by top-{top_k}", f"{dist.top_k_mass:.1%}")
        m[1].metric(
            f"Top-p {top_p:g} keeps", f"{dist.top_p_size:,} tokens", f"{dist.top_p_mass:.1%} mass"
        )
        m[2].metric("Spread (entropy)", f"{dist.entropy_bits:.2f} bits")

with tab_build:
    store = st.session_state.setdefault("explore:sentences", {})
    built = store.get(phrase, [])

    def _apply(update) -> None:
        try:
            store[phrase] = update(store.get(phrase, []))
        except WorkbookError as exc:
            st.session_state["explore:build_error"] = str(exc)
        else:
            st.session_state.pop("explore:build_error", None)

    if built:
        table = explore.sentence_table(built)
        st.markdown(f"**{phrase}**{''.join(b['token'] for b in built)}")
        chart_and_table(token_strip(table, "tokens you added"), table, TOKEN_COLUMNS)
    else:
        st.markdown(f"**{phrase}** …")
        st.caption("Pick the next token below, or let a strategy pick it.")
    if error := st.session_state.get("explore:build_error"):
        st.error(error)

    try:
        options = _distribution(
            model_name, lm, phrase, tuple(b["token_id"] for b in built), 1.0, 8, 1.0, 8
        ).table
    except WorkbookError as exc:
        st.error(str(exc))
        options = None
    if options is not None:
        st.write("**Your choice** — the 8 most likely next tokens:")
        buttons = st.columns(4)
        for i, row in enumerate(options.itertuples()):
            buttons[i % 4].button(
                f"{row.label}  ({row.probability:.1%})",
                key=f"explore:pick:{i}",
                on_click=_apply,
                args=(
                    lambda b, token_id=int(row.token_id): explore.choose(lm, phrase, b, token_id),
                ),
                width="stretch",
            )
    c = st.columns([2, 1, 1, 1, 1])
    strategy = c[0].selectbox(
        "Or let a strategy choose", explore.STEP_STRATEGIES, key="explore:step_strategy"
    )
    seed = c[1].number_input("Seed", 0, 10_000, 0, key="explore:step_seed")
    c[2].button(
        "Choose next",
        key="explore:step",
        on_click=_apply,
        args=(
            lambda b: explore.choose_by_strategy(
                lm,
                phrase,
                b,
                strategy,
                temperature=st.session_state["explore:temperature"],
                top_k=st.session_state["explore:top_k"],
                top_p=st.session_state["explore:top_p"],
                seed=int(seed),
            ),
        ),
    )
    c[3].button(
        "Undo", key="explore:undo", on_click=_apply, args=(lambda b: b[:-1],), disabled=not built
    )
    c[4].button(
        "Start over", key="explore:reset", on_click=_apply, args=(lambda b: [],), disabled=not built
    )
    st.caption(
        "The strategy uses the temperature, top-k and top-p set on the first tab. "
        "Tile colour = the probability the model gave that token; hover for its rank."
    )

with tab_compare:
    c = st.columns(6)
    seed = c[0].number_input("Seed", 0, 10_000, 0, key="explore:cmp_seed")
    max_new = c[1].slider("New tokens", 1, 40, 15, key="explore:cmp_tokens")
    low = c[2].slider("Low T", 0.1, 1.0, 0.7, 0.1, key="explore:cmp_low")
    high = c[3].slider("High T", 1.0, 3.0, 1.5, 0.1, key="explore:cmp_high")
    cmp_p = c[4].slider("top-p", 0.1, 1.0, 0.9, 0.05, key="explore:cmp_p")
    beams = c[5].slider("Beams", 1, 8, 3, key="explore:cmp_beams")
    args = (model_name, lm, phrase, int(seed), max_new, low, high, cmp_p, beams)
    if st.button("Run all strategies", key="explore:cmp_run", type="primary"):
        st.session_state["explore:cmp_args"] = args[2:]
    if st.session_state.get("explore:cmp_args") == args[2:]:
        try:
            with st.spinner("Generating…"):
                runs = _comparison(*args)
        except WorkbookError as exc:
            st.error(str(exc))
            runs = {}
        for label, generation in runs.items():
            st.markdown(f"**{label}** — *{phrase}*{generation.text}")
            table = explore.generation_table(generation)
            chart_and_table(token_strip(table), table, TOKEN_COLUMNS)
            ended = "the model chose to end" if generation.stop_reason == "eos" else "the limit"
            st.caption(f"Stopped by {ended}.")
            if generation.beam_steps:
                nodes, edges = explore.beam_tree(generation)
                chart_and_table(
                    beam_chart(nodes, edges),
                    nodes,
                    {
                        "step": "Step",
                        "text": "Continuation",
                        "score": "Sum of log-probabilities",
                        "status": "Status",
                    },
                )
                st.caption(
                    "Each step ranks every beam's continuations by summed log-probability; "
                    "green ones carry on, red ones are finished sentences, grey are dropped."
                )
    else:
        st.caption("Same phrase, same seed, five strategies. Press the button to run them.")

with tab_lens:
    top = st.slider("Alternatives on hover", 1, 10, 5, key="explore:lens_top")
    try:
        grid = _lens(model_name, lm, phrase, top)
    except WorkbookError as exc:
        st.error(str(exc))
    else:
        chart_and_table(
            lens_chart(grid),
            grid,
            {
                "layer": "Layer",
                "input_token": "Input token",
                "token": "Top prediction",
                "probability": "Probability",
                "alternatives": "Next best",
            },
        )
        st.caption(
            "Each cell: the token the model would predict next if it stopped after that "
            "layer (hidden state → final norm → output head). The top row is the model's "
            "real prediction. Hover for the probability and the runners-up."
        )
