from w2v2.bench.run import main

main()
