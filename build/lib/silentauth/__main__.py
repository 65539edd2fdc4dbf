from __future__ import annotations

from silentauth.cli import main

raise SystemExit(main())
