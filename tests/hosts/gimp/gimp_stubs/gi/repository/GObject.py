class ParamFlags:
    READWRITE = 3


class Value:
    """GObject.Value(type, value): what a procedure puts into its return values."""

    def __init__(self, value_type, value):
        self.value_type, self.value = value_type, value
