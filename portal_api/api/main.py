from fastapi import APIRouter

from portal_api.api.routes import auth, credentials, files, health, listing, terms

api_router = APIRouter()
for module in (auth, credentials, listing, terms, files, health):
    api_router.include_router(module.router)
