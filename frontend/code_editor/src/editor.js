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
  defaultHighlightStyle,
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

// A pause this long in typing saves the cell (the same pause as the text areas' autosave).
const SAVE_PAUSE_MS = 2500;

const theme = EditorView.theme({
  "&": {
    fontSize: "14px",
    border: "1px solid rgba(49, 51, 63, 0.2)",
    borderRadius: "0.5rem",
    backgroundColor: "#fbfbfd",
  },
  "&.cm-focused": { outline: "none", borderColor: "#ff4b4b" },
  ".cm-scroller": {
    fontFamily: "'Source Code Pro', ui-monospace, SFMono-Regular, Menlo, monospace",
    lineHeight: "1.5",
  },
  ".cm-gutters": { backgroundColor: "#f0f2f6", borderRight: "none", borderRadius: "0.5rem 0 0 0.5rem" },
  ".cm-content": { padding: "6px 0" },
});

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
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        bracketMatching(),
        closeBrackets(),
        highlightActiveLine(),
        highlightSelectionMatches(),
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
        EditorView.contentAttributes.of({ "aria-label": initial.label || "Code" }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) {
            clearTimeout(timer);
            timer = setTimeout(send, SAVE_PAUSE_MS);
          }
          if (update.focusChanged && !update.view.hasFocus) send();
        }),
        theme,
      ],
    }),
  });
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
