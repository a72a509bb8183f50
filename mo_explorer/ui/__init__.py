"""Web UI: the only package that imports gradio."""
