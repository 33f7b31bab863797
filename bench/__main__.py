import sys

if "--engine" in sys.argv[1:]:  # engines (issue 21): bench/engines.py
    from bench.engines import main
else:
    from bench.scale import main

main()
