"""A stand-in for PyGObject's ``gi`` package, enough to import and run the mattekit GIMP plug-in in tests."""

REQUIRED = {}


def require_version(namespace, version):
    REQUIRED[namespace] = version
