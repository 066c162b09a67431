import sys

from vacina_d1_client.cli import main

sys.exit(main(["sync", *sys.argv[1:]] if sys.argv[1:2] != ["sync"] else sys.argv[1:]))
