from source_sendgrid.run import run

if __name__ == "__main__":
    run()
