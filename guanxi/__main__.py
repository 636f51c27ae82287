"""``python -m guanxi`` runs the command line."""

from guanxi.cli import main

main()
