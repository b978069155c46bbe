"""The commented example specs `reconciler init` writes."""

EXAMPLE_MIRRORS = """\
# Desired state for reconciler: every YAML document under this directory is one resource.
# Validate with `reconciler validate`, preview with `reconciler plan`, apply with
# `reconciler apply`. Reference: README.md, "Spec reference".
apiVersion: reconciler/v1
kind: Mirror
metadata:
  name: core-repos              # lowercase letters, digits and '-'; unique per kind
  labels: {team: platform}
spec:
  # The organisation form: every listed repository (or ["*"]: every bare repository in
  # the source directory) is mirrored; {repo} is replaced by each name.
  repos: [vision-cortex, auto-builder]
  source:
    url: /srv/git/infinityxai/{repo}.git   # in a {flow: mapping}, quote a URL with {repo}
  destinations:
    # A local destination that does not exist yet is created as a bare repository.
    - url: /srv/git/backup-org-1/{repo}.git
    # Credentials only ever come from the environment, and are never stored or printed.
    # - url: "https://git.example.com/backup/{repo}.git"
    #   username: bot
    #   password: "${BACKUP_TOKEN}"
  branches: ["main", "release/*"]   # globs; default ["*"]; an empty list mirrors no branch
  tags: ["v*"]                      # globs; default ["*"]
  prune: false                      # delete destination refs that vanished at the source
  conflictStrategy: fail            # fail | force | skip, for a destination ref that diverged
"""
