from bench.scale import main

main()
