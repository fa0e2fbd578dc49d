"""``python -m chaos.proxy._child``: the process `ProxyProcess` starts (see there)."""

import sys

from chaos.proxy._process import _main

if __name__ == "__main__":
    sys.exit(_main())
