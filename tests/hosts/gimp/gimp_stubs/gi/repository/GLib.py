class Error(Exception):
    """GLib.Error(message) as PyGObject builds it; GLib.Error() is the 'no error' value."""

    def __init__(self, message=None):
        super().__init__(message)
        self.message = message
