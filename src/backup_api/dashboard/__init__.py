"""The web dashboard: server-rendered pages (Jinja2) with htmx, every asset shipped in
the package (``static/``: htmx 2, 0BSD, vendored unchanged; the stylesheet is our own)."""
