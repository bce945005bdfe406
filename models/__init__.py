"""Style models shipped with stst (installed as the package ``stst.models``); see README.md here."""
