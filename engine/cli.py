"""The `o2o` command line."""
import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="o2o", description="O2O order-routing and inventory engine")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the main job on embedded defaults")
    args = parser.parse_args(argv)
    if args.command == "demo":
        print("o2o-engine: demo not built yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
