"""`python -m tf_lanmax` runs the `lanmax` command line."""

from tf_lanmax.cli.main import run

if __name__ == "__main__":
    run()
