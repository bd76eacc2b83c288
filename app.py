"""Streamlit entry point: page config, navigation and shared sidebar, then the page runs."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="LM Logits Workbook", page_icon="🧮", layout="wide")
st.title("LM Logits Workbook")
st.info("The workbook is being set up.")
