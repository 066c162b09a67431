"""What is published: object storage, manifests and the catalog of published files.

No Dagster and no FastAPI here: the pipeline's assets and the portal API both use it.
"""
