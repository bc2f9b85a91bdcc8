"""What the browser checks ask a page, as JavaScript it runs in its own world.

Links, controls and texts are found by the page itself (`document.querySelectorAll`, which takes the CSS the
configuration gives): a Playwright locator first puts its own selector engine into each new page, half of a
link's click (50 of 95 ms a page).
"""

LINKS = "selector => [...document.querySelectorAll(selector)].map(a => [a.textContent.trim(), a.href])"
"""The text and address of each link `selector` finds, in order."""
LINK_AT = """([selector, index]) => {
  const a = document.querySelectorAll(selector)[index];
  if (!a) return null;
  a.scrollIntoView({block: 'center', inline: 'center'});
  const box = a.getBoundingClientRect();
  return [a.textContent.trim(), a.href, box.left + box.width / 2, box.top + box.height / 2, box.width * box.height > 0];
}"""
"""The link's text, address, middle (in the viewport, once scrolled to it) and whether it shows at all."""
TEXT_OF = "selector => document.querySelector(selector)?.innerText ?? ''"
"""The text the first element `selector` finds shows, '' when there is none."""
LAID_OUT_FOR_PHONES = """() => document.querySelector('meta[name=viewport][content*="width=device-width"]') !== null"""
"""Whether the page asks a phone to lay it out at the phone's own width."""
BOXES = """selector => [...document.querySelectorAll(selector)].map(el => {
  const box = el.getBoundingClientRect();
  return [box.left, box.right, box.width * box.height > 0 && getComputedStyle(el).visibility !== 'hidden'];
})"""
"""Each element's left and right edge, and whether it shows at all."""
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= innerWidth) return [];
  const clipped = el => { for (let p = el.parentElement; p; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== 'visible') return true; } return false; };
  const wide = [...document.body.querySelectorAll('*')].filter(el => {
    const box = el.getBoundingClientRect();
    const spills = getComputedStyle(el).overflowX === 'visible' && box.left + el.scrollWidth > width + 1;
    return (box.width || box.height) && (box.right > width + 1 || box.left < -1 || spills) && !clipped(el);
  });
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + [...el.classList].map(c => '.' + c).join('');
  return wide.filter(el => !wide.some(o => o !== el && el.contains(o))).slice(0, 5)
    .map(el => `${name(el)} (${Math.round(el.getBoundingClientRect().left)} to `
      + `${Math.round(el.getBoundingClientRect().left + Math.max(el.scrollWidth, el.getBoundingClientRect().width))} px)`);
}"""
"""The innermost elements (at most 5) that reach beyond the viewport's width, when the page scrolls sideways."""
