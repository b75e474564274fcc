from junction.cli import main

raise SystemExit(main())
