"""Everything that talks to a phone, one room (subpackage) per job, each importing only the rooms below it:

    adb/       servers, Device (shell, sync), the tagged-script protocol, selection, facts
    store/     the on-device layout, content-addressed files, gc, the index and the transfer plan
    push/      push a build to devices, and the device-side script that assembles and verifies it
    probe/     the native memory probe: C source, its cross-build, reading its output
    runners/   runner adapters (litert_lm_main, benchmark_model), their parsers, the x86-64 host runner
    profile/   options, session set-up, one run, its outcome, cooldown, and profiling many devices

docs/architecture.md says which file contract each reads and writes and where a change goes.
"""
