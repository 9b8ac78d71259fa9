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

// A table wider than its frame scrolls sideways in it: the frame takes the keyboard's focus
// (Safari does not give it by itself), named by the table's caption, its section's heading or the page's,
// so that a keyboard reaches the columns past the screen's edge.
function focusableScrollers() {
  for (const frame of document.querySelectorAll('.table-wrap')) {
    const scrolls = frame.scrollWidth > frame.clientWidth;
    if (scrolls && !frame.hasAttribute('tabindex')) {
      const table = frame.querySelector('table');
      const caption = table && table.caption ? table.caption.textContent : '';
      const heading = frame.closest('section')?.querySelector('h2')?.textContent
        || document.querySelector('main h1')?.textContent || '';
      frame.setAttribute('tabindex', '0');
      frame.setAttribute('role', 'region');
      frame.setAttribute('aria-label', (caption || heading).trim());
    } else if (!scrolls && frame.getAttribute('tabindex') === '0') {
      frame.removeAttribute('tabindex');
      frame.removeAttribute('role');
      frame.removeAttribute('aria-label');
    }
  }
}
window.addEventListener('load', focusableScrollers);
window.addEventListener('resize', focusableScrollers);
// The live case search puts new results (a new table) in place.
document.addEventListener('htmx:afterSettle', focusableScrollers);
