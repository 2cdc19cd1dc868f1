from retrieval_lab.cli import main

main()
