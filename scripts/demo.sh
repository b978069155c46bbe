#!/usr/bin/env bash
# `make demo`: build a small source org of bare repos, then validate, plan, apply, status,
# and show that the next plan is empty. Runs from the repository root.
set -euo pipefail
demo=state/demo
export RECONCILER_STATE=$demo/reconciler.db
rm -rf "$demo"
mkdir -p "$demo/infinityxai"
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.invalid
export GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.invalid

for repo in vision-cortex auto-builder docs-site; do
  bare="$demo/infinityxai/$repo.git"
  work="$demo/work/$repo"
  git init --quiet --bare --initial-branch=main "$bare"
  git init --quiet --initial-branch=main "$work"
  for n in 1 2 3; do
    echo "$repo change $n" > "$work/README.md"
    git -C "$work" add README.md
    git -C "$work" commit --quiet -m "$repo: change $n"
  done
  git -C "$work" tag v1.0.0
  git -C "$work" branch release/1.0
  git -C "$work" branch feature/experiment
  git -C "$work" push --quiet "$PWD/$bare" main release/1.0 feature/experiment v1.0.0
done

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step reconciler validate
step reconciler plan
step reconciler apply --yes
step reconciler status
echo "vision-cortex @ main" > "$demo/work/vision-cortex/README.md"
git -C "$demo/work/vision-cortex" commit --quiet -am "vision-cortex: one more change"
git -C "$demo/work/vision-cortex" push --quiet "$PWD/$demo/infinityxai/vision-cortex.git" main
printf '\nA new commit on vision-cortex main at the source:\n'
step reconciler plan
step reconciler apply --yes
set +e
step reconciler plan --detailed-exitcode
code=$?
set -e
echo "plan --detailed-exitcode exited $code (0: nothing left to do)"
step reconciler history Mirror/deploy-releases
test "$code" -eq 0
