from bench.nightly import main

main()
