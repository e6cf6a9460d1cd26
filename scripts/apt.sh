# Sourced by the scripts that install what a fresh machine lacks.
# apt_install PKG...: installs the packages named (the ones a check found missing); nothing if none.
apt_install() {
  (($#)) || return 0
  echo "== apt-get install $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
