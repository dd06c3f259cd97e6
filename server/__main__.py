from server.main import run

run()
