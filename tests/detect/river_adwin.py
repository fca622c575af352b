"""river's drift.ADWIN (default parameters) over a stream for tests/detect.rs and the
detector_delays example: reads little-endian f64 values from the file named by the first
argument, feeds them in order, prints the indices where it detected drift as JSON."""
import json
import sys

import numpy as np
from river import drift

values = np.fromfile(sys.argv[1], dtype="<f8")
adwin = drift.ADWIN()
alarms = []
for i, x in enumerate(values.tolist()):
    adwin.update(x)
    if adwin.drift_detected:
        alarms.append(i)
print(json.dumps({"river": __import__("river").__version__, "alarms": alarms}))
