"""What people see, before a platform renders it: neutral cards and the presenters that fill them.

The time format is commands.labels.local_time and the digest chart is commands.chart (the digest in
commands draws it), so both stay in commands.
"""
