"""Writes examples/events.jsonl: two hours of samples from the sample fleet,
one a minute, with a few deliberate problems to show how rejects look."""
import json, math, datetime as dt

start = dt.datetime(2026, 3, 15, 7, 0, tzinfo=dt.timezone.utc)
lines = []
def ev(cid, t, measurements, channel=None, emptied=False):
    e = {"connection_id": cid, "event_time": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "measurements": measurements}
    if channel: e["channel_id"] = channel
    if emptied: e["bin_emptied"] = True
    lines.append(json.dumps(e))
def m(p, v, unit=None):
    d = {"parameter": p, "value": v}
    if unit: d["unit"] = unit
    return d
flow = {"c01": 10000.0, "c02": 500.0}
energy = {"c01": 1200.0, "c02": 75.0}
weight = 2.0
for i in range(120):
    t = start + dt.timedelta(minutes=i, seconds=1)
    ev("GA_23682013", t, [m("pm2p5", round(12 + 3*math.sin(i/9), 2)), m("tvoc", 180 + i % 7),
        m("co2", 420 + 2*i), m("temp", round(71 + math.sin(i/20), 2), "F"), m("rh", 45 + (i % 5))])
    ev("KTM_AIR_1", t, [m("pm2p5", 30 + i % 11), m("co2", 600 - i), m("temp", 295.15, "K")])
    for c in ("c01", "c02"):
        flow[c] += 3.5 if c == "c01" else 0.02
        ev("WT_9", t, [m("water_flow", round(flow[c], 3)), m("water_temp", 12.5 if c == "c01" else 48.0), m("ph", 7.1)], channel=c)
        energy[c] += 0.05
        ev("EN_7", t, [m("power_consumption", round(energy[c] * 1000, 1), "Wh")], channel=c)
    weight += 0.4
    emptied = i in (50, 95)
    ev("BIN_3", t, [m("bin_weight", round(weight, 2))], channel="general", emptied=emptied)
    if emptied:
        weight = 0.3
# Deliberate problems: an unknown monitor, an impossible value, text for a number, a late sample.
ev("NOBODY", start + dt.timedelta(minutes=5), [m("co2", 400)])
ev("GA_23682013", start + dt.timedelta(minutes=119, seconds=30), [m("rh", 130)])
ev("GA_23682013", start + dt.timedelta(minutes=119, seconds=40), [m("co2", "high")])
ev("GA_23682013", start + dt.timedelta(minutes=3), [m("co2", 999)])
with open("examples/events.jsonl", "w") as f:
    f.write("\n".join(lines) + "\n")
