"""vacina-d1 sync: the municipalities' client of the vacina-d1 portal.

Pure Python (httpx, tqdm); DuckDB and PostgreSQL loading are optional extras. It
never imports the server's packages: it talks to the portal over HTTP only.
"""

__version__ = "0.1.0"
