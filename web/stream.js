// The demo page's one open stream: an EventSource with its kind and topic, a deadline to open,
// and handlers that stop running once it is closed or replaced; and the last event id seen,
// kept in sessionStorage, which a stream opened again resumes from. Imported by app.js.
//
// The EventSource is the hub's client library's drop-in (/ssehub.js, clients/js/): a live stream
// is shared by every tab of the demo open in this browser (one upstream stream for all of them),
// and a burst is the tab's own, as before.
//
// createStream(openTimeoutMs) returns open(kind, topic, url, handlers), close(), current() (the
// open stream, or null), lastId() and remember(id).

import { SharedEventSource } from '/ssehub.js';

export function createStream(openTimeoutMs) {
  var STORAGE_KEY = 'ssehub.lastEventId';
  var stream = null; // { source: SharedEventSource, kind: 'burst'|'live', topic, opened: bool, ... }
  var lastId = readStoredId();

  function readStoredId() {
    try {
      return window.sessionStorage.getItem(STORAGE_KEY) || '';
    } catch (err) {
      return '';
    }
  }

  function rememberId(id) {
    if (!id) return;
    lastId = id;
    try {
      window.sessionStorage.setItem(STORAGE_KEY, id);
    } catch (err) {
      // Storage may be unavailable (privacy settings); memory is enough then.
    }
  }

  function closeStream() {
    if (stream) {
      stream.closed = true;
      stream.source.close();
      if (stream.openTimer) clearTimeout(stream.openTimer);
      stream = null;
    }
  }

  // Opens a stream; `handlers.open` runs once, the first time the stream opens.
  function openStream(kind, topic, url, handlers) {
    closeStream();
    var current = {
      source: new SharedEventSource(url),
      kind: kind,
      topic: topic,
      opened: false,
      closed: false,
      openTimer: null
    };
    stream = current;
    var live = function (fn) {
      return function (event) {
        if (stream === current && !current.closed) fn(event, current);
      };
    };
    current.source.addEventListener('open', live(function (event, s) {
      var first = !s.opened;
      s.opened = true;
      if (s.openTimer) {
        clearTimeout(s.openTimer);
        s.openTimer = null;
      }
      handlers.open(first, s);
    }));
    current.source.addEventListener('error', live(handlers.error));
    current.source.addEventListener('message', live(handlers.message));
    current.source.addEventListener('close', live(handlers.close));
    current.source.addEventListener('gap', live(handlers.gap || function () {}));
    current.openTimer = setTimeout(live(function (event, s) {
      if (!s.opened) handlers.timeout(s);
    }), openTimeoutMs);
    return current;
  }

  return {
    open: openStream,
    close: closeStream,
    current: function () { return stream; },
    lastId: function () { return lastId; },
    remember: rememberId
  };
}
