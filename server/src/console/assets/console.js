// Progressive enhancement only: every page works without it.

// A page that says what is wrong with a form puts the focus on what it says, for a screen
// reader to read it at once: the message's own `autofocus` is ignored when the address names a
// section of the page, as the address a form sends to does (`#referrals`), and the browser
// goes to that section once the page has loaded, after which the focus is put.
window.addEventListener('load', () => {
  setTimeout(() => {
    const said = document.querySelector('[role="alert"][tabindex="-1"]');
    if (said && document.activeElement === document.body) {
      said.focus();
    }
  }, 0);
});
