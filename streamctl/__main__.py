from streamctl.cli.entry import run

run()
