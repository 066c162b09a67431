"""The terms of use every operation starts with (version 1), until DATASUS publishes
its own text with ``vacina-d1 admin publish-terms``."""

DEFAULT_TERMS = """\
Termos de uso dos arquivos D-1 de vacinação (RNDS)

1. Os arquivos contêm registros individuais de vacinação, pseudonimizados, do
   território da credencial. Use-os somente para as finalidades de vigilância,
   gestão e assistência à saúde previstas na credencial.
2. Não tente reidentificar pessoas nem cruzar os arquivos com outras bases para
   esse fim (Lei nº 13.709/2018, LGPD).
3. Não repasse os arquivos a terceiros sem autorização; guarde-os em ambiente
   protegido e apague-os quando não forem mais necessários.
4. Cada download fica registrado com o usuário, a data e a hora.
"""
