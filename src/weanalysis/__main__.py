from weanalysis.cli.main import main

main()
