"""The credential-request workflow (issue 6): solicitação → análise → homologação →
produção, on the portal's own credential model.

``catalog`` (the APIs and their operations), ``schemas`` (the form, validated field by
field, and the answers), ``workflow`` (the state machines and their transition log),
``certificates`` (the ICP-Brasil certificate, public part only), ``evidence`` (PDF/PNG
by content), ``service`` (reads and writes), ``present`` (rows → answers), ``errors``
(problems that name the field), ``models`` (the tables of migration 0002).
"""
