"""Thin Streamlit pages: widgets and layout only; logic lives in workbook/."""
