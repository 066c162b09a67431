from fastapi import APIRouter

from portal_api.api.routes import auth, credentials, files, gestao, health, listing, solicitacoes, terms

api_router = APIRouter()
for module in (auth, credentials, listing, terms, files, solicitacoes, gestao, health):
    api_router.include_router(module.router)
