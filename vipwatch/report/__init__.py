"""The HTML report of a crawl's alerts: render.py builds the page, charts.py draws its figures."""
