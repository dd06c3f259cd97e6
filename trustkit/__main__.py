from trustkit.cli import run

run()
