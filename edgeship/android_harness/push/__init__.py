"""Push a build to devices: ``push`` (survey, plan, send, verify, rename) and ``script`` (what runs on the
device: the survey and the assembly that writes, hashes and renames the bundle into place).
"""

from edgeship.android_harness.push.push import PushResult, push_bundle, push_many

__all__ = ["PushResult", "push_bundle", "push_many"]
