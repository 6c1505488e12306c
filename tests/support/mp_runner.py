# Runs a plain-assert test module inside MicroPython:
#   micropython tests/support/mp_runner.py tests/codec/test_codec.py
import sys

path = sys.argv[1]
slash = path.rfind("/")  # no str.rpartition on the ESP8266 (nor its board proxy)
sys.path.insert(0, path[:slash] if slash > 0 else ".")
sys.path.insert(0, "lib")
module = __import__(path[slash + 1:-3])
passed = failed = 0
for name in sorted(dir(module)):
    if name.startswith("test_"):
        try:
            getattr(module, name)()
            passed += 1
        except Exception as e:
            failed += 1
            print("FAIL", name)
            sys.print_exception(e)
print("micropython: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
