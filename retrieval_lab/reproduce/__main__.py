from retrieval_lab.reproduce.cli import main

main()
