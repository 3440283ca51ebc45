"""Backups: `shoebox backup`, `shoebox restore`, the schedule while serving and the copy taken
before a migration.

A backup is a folder (`shoebox-backup-<UTC time>`), not an archive: a restore, a person or a
script can read each file as it is, a USB disk formatted FAT/exFAT takes it, a partial copy never
looks finished (it is written under a hidden temporary name and renamed once its manifest is in
it), and `--originals` can add gigabytes of photos without building one huge file. Every file is
listed in `manifest.json` with its SHA-256, so a restore verifies the whole backup before it
touches anything.
"""
