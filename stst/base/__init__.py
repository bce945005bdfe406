"""The ground every wing stands on: files and images, errors and exit codes, devices, limits, torchrun.

Imports nothing else of stst.
"""
