// The demo page's feed: each arrival and notice as a list item, newest first, at most 200,
// always as text (a message is never parsed as HTML). Imported by app.js.
//
// createFeed(el) takes the list, its empty-state text and its Clear button; it returns
// notice(kind, text) and arrival(event, payload, counter).
export function createFeed(el) {
  var MAX_FEED_ITEMS = 200;
  var feed = el.feed;
  var feedEmpty = el.empty;
  var clearButton = el.clear;

  function pad(n, width) {
    var s = String(n);
    while (s.length < width) s = '0' + s;
    return s;
  }

  function clock(date) {
    return pad(date.getHours(), 2) + ':' + pad(date.getMinutes(), 2) + ':' +
      pad(date.getSeconds(), 2) + '.' + pad(date.getMilliseconds(), 3);
  }

  function addItem(className, parts) {
    var item = document.createElement('li');
    item.className = className;
    var time = document.createElement('time');
    var now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = clock(now);
    item.appendChild(time);
    parts.forEach(function (part) {
      if (!part) return;
      var span = document.createElement('span');
      span.className = part.className;
      span.textContent = part.text; // always text: messages are never parsed as HTML
      if (part.title) span.title = part.title;
      item.appendChild(span);
    });
    feed.insertBefore(item, feed.firstChild);
    while (feed.children.length > MAX_FEED_ITEMS) feed.removeChild(feed.lastChild);
    feedEmpty.hidden = true;
    clearButton.hidden = false;
    return item;
  }

  function addNotice(kind, text) {
    return addItem('notice ' + kind, [{ className: 'text', text: text }]);
  }

  function addArrival(event, payload, counter) {
    var data = payload && payload.data && typeof payload.data === 'object' ? payload.data : {};
    var replayed = data.replayed === true;
    var message = typeof data.message === 'string' ? data.message : String(event.data);
    var meta = [];
    if (data.topic) meta.push(data.topic);
    if (event.lastEventId) meta.push('id ' + event.lastEventId);
    addItem(replayed ? 'arrival replayed' : 'arrival', [
      counter ? { className: 'seq', text: counter } : null,
      { className: 'text', text: message },
      replayed ? { className: 'badge', text: 'replayed', title: 'Sent again from history after a reconnect' } : null,
      meta.length ? { className: 'meta', text: meta.join(' · ') } : null
    ]);
  }

  clearButton.addEventListener('click', function () {
    while (feed.firstChild) feed.removeChild(feed.firstChild);
    feedEmpty.hidden = false;
    clearButton.hidden = true;
    if (el.onClear) el.onClear();
  });

  return { notice: addNotice, arrival: addArrival };
}
