from streamctl.cli.main import run

run()
