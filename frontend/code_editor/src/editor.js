// The notebook's code cell: CodeMirror 6 with Python, mounted as a Streamlit
// components-v2 component (it runs in the page itself, not in an iframe).
//
// Python passes `data` = {code, label, reset, minLines}; the editor reports back with
//   setStateValue("code", text)  - a save: after a pause in typing, on leaving the cell,
//                                  and when the tab is hidden or closed (as the text
//                                  areas' autosave does elsewhere in the app);
//   setTriggerValue("run", text) - Shift+Enter or Ctrl/Cmd+Enter: run the cell with this text.
//
// Rebuild: cd frontend/code_editor && npm ci && npm run build  (writes static/code_editor.js)

import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import {
  bracketMatching,
  HighlightStyle,
  indentOnInput,
  indentUnit,
  syntaxHighlighting,
} from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { EditorState } from "@codemirror/state";
import {
  drawSelection,
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
  placeholder,
} from "@codemirror/view";
import { tags as t } from "@lezer/highlight";

// Token colours chosen for at least 4.5:1 (WCAG AA) against the editor's background and its
// highlighted active line; CodeMirror's default style has lighter ones (e.g. #e40, #f00).
// Contrast ratios against #fbfbfd are in the comments.
const highlightStyle = HighlightStyle.define([
  { tag: [t.keyword, t.controlKeyword, t.operatorKeyword, t.definitionKeyword, t.moduleKeyword], color: "#6f1d99" }, // 9.3:1
  { tag: [t.self, t.special(t.variableName)], color: "#6f1d99" },
  { tag: [t.atom, t.bool, t.null], color: "#0b5c8a" }, // 6.9:1
  { tag: [t.number, t.integer, t.float], color: "#0f6b43" }, // 6.5:1
  { tag: [t.string, t.docString], color: "#a31515" }, // 7.3:1
  { tag: [t.special(t.string), t.escape, t.regexp, t.character], color: "#8a3b00" }, // 7.4:1
  { tag: t.comment, color: "#4f5b66", fontStyle: "italic" }, // 6.6:1
  { tag: [t.definition(t.variableName), t.function(t.definition(t.variableName))], color: "#1f3fa6" }, // 8.6:1
  { tag: [t.className, t.typeName, t.definition(t.className)], color: "#115e67" }, // 7.1:1
  { tag: [t.propertyName, t.function(t.propertyName)], color: "#24476b" }, // 9.0:1
  { tag: [t.meta, t.annotation], color: "#5c4a00" }, // 8.4:1
  { tag: t.invalid, color: "#b00020" }, // 6.5:1
  { tag: t.link, textDecoration: "underline" },
  { tag: t.strong, fontWeight: "bold" },
  { tag: t.emphasis, fontStyle: "italic" },
]);

// A pause this long in typing saves the cell (the same pause as the text areas' autosave).
const SAVE_PAUSE_MS = 2500;

const theme = EditorView.theme({
  "&": {
    fontSize: "14px",
    border: "1px solid rgba(49, 51, 63, 0.2)",
    borderRadius: "0.5rem",
    backgroundColor: "#fbfbfd",
  },
  // A clear focus ring for keyboard users (3:1 or more against the page).
  "&.cm-focused": { outline: "2px solid #1f3fa6", outlineOffset: "1px", borderColor: "#1f3fa6" },
  ".cm-scroller": {
    fontFamily: "'Source Code Pro', ui-monospace, SFMono-Regular, Menlo, monospace",
    lineHeight: "1.5",
  },
  ".cm-gutters": {
    backgroundColor: "#f0f2f6",
    color: "#4a4f5c", // line numbers: 7.2:1 on the gutter
    borderRight: "none",
    borderRadius: "0.5rem 0 0 0.5rem",
  },
  ".cm-placeholder": { color: "#5c6370" },
  ".cm-content": { padding: "6px 0" },
});

let hintCount = 0;

function createEditor(host, component, initial) {
  // Mutable: every rerun hands the mount function fresh setters, the latest win.
  const api = { component };
  let lastSent = initial.code;
  let timer = null;

  const send = () => {
    clearTimeout(timer);
    timer = null;
    const text = view.state.doc.toString();
    if (text === lastSent) return;
    lastSent = text;
    api.component.setStateValue("code", text);
  };
  const run = () => {
    clearTimeout(timer);
    timer = null;
    const text = view.state.doc.toString();
    lastSent = text; // the run saves the code too
    api.component.setTriggerValue("run", text);
    return true;
  };

  // A line under the editor, shown while it has focus and read by screen readers on entry.
  const hintId = `wb-code-hint-${++hintCount}`;
  const hint = document.createElement("p");
  hint.id = hintId;
  hint.className = "wb-code-hint";
  hint.textContent =
    "In the code editor Tab indents. To leave it press Esc, then Tab. Shift+Enter runs the cell.";
  hint.style.cssText = "margin:0.25rem 0 0;font-size:0.875rem;color:#3d4350;";
  hint.hidden = true; // aria-describedby reads hidden text too

  const view = new EditorView({
    parent: host,
    state: EditorState.create({
      doc: initial.code,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        history(),
        drawSelection(),
        indentUnit.of("    "),
        EditorState.tabSize.of(4),
        indentOnInput(),
        syntaxHighlighting(highlightStyle),
        bracketMatching(),
        closeBrackets(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        // Long lines wrap: a sideways-scrolling editor is hard to use at 200 % zoom or on a
        // phone, and its scroller is a region the keyboard cannot scroll.
        EditorView.lineWrapping,
        python(),
        placeholder(initial.placeholder || ""),
        // Run keys come first so that they win over Enter's newline.
        keymap.of([
          { key: "Shift-Enter", run, preventDefault: true },
          { key: "Mod-Enter", run, preventDefault: true },
          ...closeBracketsKeymap,
          ...defaultKeymap,
          ...searchKeymap,
          ...historyKeymap,
          // Tab indents, Shift+Tab dedents; Escape then Tab leaves the editor (keyboard users).
          indentWithTab,
        ]),
        EditorView.contentAttributes.of({
          "aria-label": initial.label || "Code",
          // Read when focus enters the editor: Tab indents here, so say how to leave it.
          "aria-describedby": hintId,
        }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) {
            clearTimeout(timer);
            timer = setTimeout(send, SAVE_PAUSE_MS);
          }
          if (update.focusChanged) hint.hidden = !update.view.hasFocus;
          if (update.focusChanged && !update.view.hasFocus) send();
        }),
        theme,
      ],
    }),
  });
  host.appendChild(hint);
  view.dom.style.minHeight = `${(initial.minLines || 4) * 21 + 14}px`;

  const onHidden = () => {
    if (document.visibilityState === "hidden") send();
  };
  document.addEventListener("visibilitychange", onHidden);
  window.addEventListener("pagehide", send);

  // Tests and the page read the text from here.
  view.dom.workbookView = view;
  return {
    api,
    view,
    reset: initial.reset,
    destroy() {
      send();
      document.removeEventListener("visibilitychange", onHidden);
      window.removeEventListener("pagehide", send);
      view.destroy();
      hint.remove();
    },
  };
}

export default function mountCodeEditor(component) {
  const { data, parentElement } = component;
  let host = parentElement.querySelector(".wb-code-editor");
  if (!host) {
    host = document.createElement("div");
    host.className = "wb-code-editor";
    parentElement.appendChild(host);
  }
  let editor = host.workbookEditor;
  if (editor && editor.reset !== data.reset) {
    // The page asked for a fresh start (e.g. the saved code changed elsewhere).
    editor.destroy();
    editor = null;
  }
  if (!editor) {
    editor = createEditor(host, component, data);
    host.workbookEditor = editor;
  } else {
    editor.api.component = component;
  }
  return () => {
    // Called when the cell leaves the page: keep what was typed.
    if (host.workbookEditor === editor) {
      editor.destroy();
      host.workbookEditor = null;
    }
  };
}
