# Synthetic air fleets for the scripts beside this one (sourced, not run).
# fleet N FILE: a monitors.yaml of N air monitors GA_00000000...
fleet() {
  awk -v n="$1" 'BEGIN {
    print "monitors:"
    for (i = 0; i < n; i++) {
      id = sprintf("GA_%08d", i)
      print "  - connection_id: " id
      print "    module: air"
      print "    timezone: Asia/Shanghai"
      print "    label: Floor " (i % 40)
      print "    monitor_brand: GIGA"
      print "    monitor_sku: AirM3"
      print "    monitor_serial_id: " id
      print "    last_monitor_calibration_date: \"2022-08-01T00:00:00+08:00\""
      print "    parameters: {pm2p5: ug/m3, tvoc: ppb, co2: ppm, temp: C, rh: \"%RH\"}"
    }
  }' > "$2"
}

# events N COUNT FILE: COUNT JSON-lines events of `fleet N`, five
# measurements each, every monitor in turn, one round every 30 s from
# 2026-03-15T00:00:00Z, in time order.
events() {
  awk -v n="$1" -v count="$2" 'BEGIN {
    start = 1773532800
    for (i = 0; i < count; i++) {
      m = i % n
      t = start + int(i / n) * 30
      ms = (i % n) % 1000
      printf "{\"connection_id\":\"GA_%08d\",\"event_time\":%d%03d,\"measurements\":[{\"parameter\":\"pm2p5\",\"value\":%d},{\"parameter\":\"tvoc\",\"value\":%d},{\"parameter\":\"co2\",\"value\":%d},{\"parameter\":\"temp\",\"value\":%.1f},{\"parameter\":\"rh\",\"value\":%d}]}\n", m, t, ms, 5 + i % 40, 100 + i % 300, 400 + i % 600, 18 + (i % 90) / 10, 30 + i % 40
    }
  }' > "$3"
}
