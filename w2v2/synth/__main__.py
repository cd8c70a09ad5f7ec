from w2v2.synth.corpus import main

main()
