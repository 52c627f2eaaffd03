"""``python -m userstatus_client``: the ``userstatus`` command."""

import sys

from userstatus_client.cli import main

sys.exit(main())
