// The ssehub demo page: plain JavaScript, no build step.
//
// Burst mode (the seed's contract): each submit opens GET /stream?topic=T, waits for the stream
// to open, POSTs the message, shows its repeats and closes on the `close` event.
// Live mode: one long-lived GET /stream?mode=live&topic=T stream; submitting only POSTs. The page
// remembers the last event id it saw so that streams it opens again (new topic, Connect, after
// the server ended the stream) resume from history; EventSource's own automatic reconnects send
// the Last-Event-ID header by themselves.
'use strict';

(function () {
  var STORAGE_KEY = 'ssehub.lastEventId';
  var MAX_FEED_ITEMS = 200;
  var OPEN_TIMEOUT_MS = 10000;
  var RECONNECT_MIN_MS = 2000;
  var RECONNECT_MAX_MS = 30000;
  // The server's topic rule: 1 to 128 bytes, segments of [A-Za-z0-9_.:-] joined by '/'.
  var TOPIC_RE = /^[A-Za-z0-9_.:-]+(\/[A-Za-z0-9_.:-]+)*$/;
  var STATES = ['idle', 'connecting', 'open', 'closed', 'error'];

  var form = document.getElementById('publish-form');
  var messageInput = document.getElementById('message');
  var topicInput = document.getElementById('topic');
  var modeSelect = document.getElementById('mode');
  var sendButton = document.getElementById('send');
  var connectionButton = document.getElementById('connection');
  var stateEl = document.getElementById('state');
  var stateDetail = document.getElementById('state-detail');
  var feed = document.getElementById('feed');
  var feedEmpty = document.getElementById('feed-empty');
  var clearButton = document.getElementById('clear');
  var errorEl = document.getElementById('error');

  // The one open stream, if any, and what it is for.
  var stream = null; // { source: EventSource, kind: 'burst'|'live', topic, opened: bool, ... }
  var liveWanted = true; // live mode: false after the user pressed Disconnect
  var reconnectTimer = null;
  var reconnectDelay = RECONNECT_MIN_MS;
  var lastEventId = readStoredId();
  var streamErrorShown = false; // the error shown is about the live stream, not the user's input

  // ---- small helpers -------------------------------------------------------------------------

  function readStoredId() {
    try {
      return window.sessionStorage.getItem(STORAGE_KEY) || '';
    } catch (err) {
      return '';
    }
  }

  function rememberId(id) {
    if (!id) return;
    lastEventId = id;
    try {
      window.sessionStorage.setItem(STORAGE_KEY, id);
    } catch (err) {
      // Storage may be unavailable (privacy settings); memory is enough then.
    }
  }

  function pad(n, width) {
    var s = String(n);
    while (s.length < width) s = '0' + s;
    return s;
  }

  function clock(date) {
    return pad(date.getHours(), 2) + ':' + pad(date.getMinutes(), 2) + ':' +
      pad(date.getSeconds(), 2) + '.' + pad(date.getMilliseconds(), 3);
  }

  function parseData(event) {
    try {
      var parsed = JSON.parse(event.data);
      return parsed && typeof parsed === 'object' ? parsed : null;
    } catch (err) {
      return null;
    }
  }

  function currentTopic() {
    return topicInput.value.trim();
  }

  function topicProblem(topic) {
    if (topic === '') return 'Enter a topic, for example default.';
    if (topic.length > 128 || !TOPIC_RE.test(topic)) {
      return 'Invalid topic "' + topic + '": use 1 to 128 characters of A-Z a-z 0-9 _ . : - ' +
        'in parts separated by "/".';
    }
    return '';
  }

  // ---- state, errors, feed -------------------------------------------------------------------

  function setState(state, detail) {
    if (STATES.indexOf(state) < 0) state = 'error';
    if (stateEl.textContent !== state) stateEl.textContent = state;
    stateEl.setAttribute('data-state', state);
    if (typeof detail === 'string') stateDetail.textContent = detail;
  }

  // Shows an error; `field` is the input it is about (marked invalid, and focused unless
  // `keepFocus`: a check run because focus left the field must not pull it back).
  function showError(text, field, keepFocus) {
    streamErrorShown = false;
    errorEl.textContent = text;
    [messageInput, topicInput].forEach(function (input) {
      if (input === field) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    });
    if (field && !keepFocus) field.focus();
  }

  // The input a server error is about, to focus it.
  function fieldFor(err) {
    if (err.status === 400 && /topic/i.test(err.message)) return topicInput;
    if (err.status === 400 || err.status === 413) return messageInput;
    return null;
  }

  // An error about the live stream: cleared again once the stream is back.
  function showStreamError(text) {
    showError(text, null, true);
    streamErrorShown = true;
  }

  function clearError() {
    streamErrorShown = false;
    errorEl.textContent = '';
    messageInput.removeAttribute('aria-invalid');
    topicInput.removeAttribute('aria-invalid');
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

  // ---- publishing ----------------------------------------------------------------------------

  // POSTs the message; resolves to the accepted event's data, or rejects with an Error whose
  // message is fit to show (the server's own error text for 4xx and 5xx answers).
  function publish(message, topic) {
    return fetch('/api/messages', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify({ message: message, topic: topic })
    }).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try {
          body = text ? JSON.parse(text) : null;
        } catch (err) {
          body = null;
        }
        if (!response.ok) {
          var reason = body && typeof body.error === 'string' ? body.error
            : 'The server answered ' + response.status + ' ' + response.statusText + '.';
          var failure = new Error(reason);
          failure.status = response.status;
          throw failure;
        }
        return body && body.data ? body.data : {};
      });
    }, function () {
      throw new Error('Could not reach the server. Is ssehub running?');
    });
  }

  // ---- streams -------------------------------------------------------------------------------

  function closeStream() {
    if (stream) {
      stream.closed = true;
      stream.source.close();
      if (stream.openTimer) clearTimeout(stream.openTimer);
      stream = null;
    }
  }

  function cancelReconnect() {
    if (reconnectTimer) {
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
    }
  }

  // Opens a stream; `handlers.open` runs once, the first time the stream opens.
  function openStream(kind, topic, url, handlers) {
    closeStream();
    var current = {
      source: new EventSource(url),
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
    }), OPEN_TIMEOUT_MS);
    return current;
  }

  // Burst: open the stream, then publish, then show the repeats until `close`.
  function startBurst(message, topic) {
    cancelReconnect();
    if (stream && stream.kind === 'burst') {
      addNotice('info', 'Previous burst cancelled.');
    }
    setState('connecting', 'Opening a stream for topic ' + topic + '…');
    var received = 0;
    openStream('burst', topic, '/stream?topic=' + encodeURIComponent(topic), {
      open: function (first, s) {
        if (!first) return;
        setState('open', 'Stream open on topic ' + topic + '. Publishing…');
        publish(message, topic).then(function (data) {
          if (stream !== s) return;
          if (messageInput.value === message) messageInput.value = '';
          var note = 'Published' + (data.id ? ' event ' + data.id : '') + ' to ' + topic + '.';
          if (received === 0) setState('open', note + ' Waiting for the repeats…');
        }, function (err) {
          if (stream !== s) return;
          closeStream();
          setState('error', 'The message was not published.');
          showError(err.message, fieldFor(err));
        });
      },
      message: function (event, s) {
        var payload = parseData(event);
        var data = payload && payload.data ? payload.data : {};
        received += 1;
        var counter = typeof data.sequence === 'number' && typeof data.total === 'number'
          ? '#' + data.sequence + '/' + data.total : '#' + received;
        addArrival(event, payload, counter);
        setState('open', 'Received ' + counter.slice(1) + ' on topic ' + s.topic + '.');
      },
      close: function (event) {
        var payload = parseData(event);
        var data = payload && payload.data ? payload.data : {};
        closeStream();
        if (data.status === 'complete') {
          setState('closed', 'Burst complete: ' + received + ' ' +
            (received === 1 ? 'arrival' : 'arrivals') + '. Stream closed.');
        } else if (data.status === 'shutdown') {
          setState('closed', 'The server is shutting down; stream closed.');
          addNotice('warning', 'Server shutting down: the stream was closed after ' +
            received + ' of the repeats.');
        } else {
          setState('closed', 'Stream closed by the server' +
            (data.message ? ': ' + data.message : '') + '.');
          addNotice('warning', 'Stream closed early (' + (data.status || 'unknown') + ').');
        }
      },
      error: function (event, s) {
        // A burst is not resumed: an automatic reconnect would start a new burst.
        closeStream();
        if (!s.opened) {
          setState('error', 'Could not open the stream.');
          showError('Could not open the event stream. Is the server running?');
        } else {
          setState('error', 'The stream was interrupted after ' + received + ' arrivals.');
          showError('The connection to the server was lost.');
        }
      },
      timeout: function () {
        closeStream();
        setState('error', 'The stream did not open in time.');
        showError('The server did not answer in time. Try again.');
      }
    });
  }

  function liveUrl(topic) {
    var url = '/stream?mode=live&topic=' + encodeURIComponent(topic);
    if (lastEventId) url += '&lastEventId=' + encodeURIComponent(lastEventId);
    return url;
  }

  function scheduleReconnect(reason) {
    cancelReconnect();
    var delay = reconnectDelay;
    reconnectDelay = Math.min(reconnectDelay * 2, RECONNECT_MAX_MS);
    setState(stateEl.textContent === 'error' ? 'error' : 'closed',
      reason + ' Reconnecting in ' + Math.round(delay / 1000) + ' s…');
    reconnectTimer = setTimeout(function () {
      reconnectTimer = null;
      if (modeSelect.value === 'live' && liveWanted) connectLive();
    }, delay);
  }

  function connectLive() {
    cancelReconnect();
    var topic = currentTopic();
    var problem = topicProblem(topic);
    if (problem) {
      closeStream();
      setState('idle', 'Not connected: fix the topic to start the live feed.');
      showError(problem, topicInput, true);
      return;
    }
    setState('connecting', 'Connecting to topic ' + topic +
      (lastEventId ? ', resuming after event ' + lastEventId : '') + '…');
    openStream('live', topic, liveUrl(topic), {
      open: function (first, s) {
        reconnectDelay = RECONNECT_MIN_MS;
        if (streamErrorShown) clearError();
        setState('open', 'Live on topic ' + s.topic + '.' +
          (first ? '' : ' Reconnected; missed events are replayed.'));
        if (!first) addNotice('info', 'Reconnected to ' + s.topic + '.');
      },
      message: function (event) {
        addArrival(event, parseData(event), '');
        rememberId(event.lastEventId);
      },
      gap: function (event) {
        var payload = parseData(event);
        var data = payload && payload.data ? payload.data : {};
        addNotice('gap', 'Some events may have been missed' +
          (data.requested ? ' after event ' + data.requested : '') + ': ' +
          (data.message || 'history no longer holds them all') + '.');
      },
      close: function (event, s) {
        var payload = parseData(event);
        var data = payload && payload.data ? payload.data : {};
        closeStream();
        var why = data.status === 'shutdown' ? 'The server is shutting down.'
          : 'The server closed the stream' + (data.message ? ' (' + data.message + ')' : '') + '.';
        addNotice('warning', why);
        setState('closed');
        if (liveWanted) scheduleReconnect(why);
        updateConnectionButton();
      },
      error: function (event, s) {
        if (s.source.readyState === EventSource.CONNECTING) {
          // EventSource reconnects by itself and sends Last-Event-ID.
          setState('connecting', s.opened
            ? 'Connection lost; reconnecting to ' + s.topic + '…'
            : 'Waiting for the server…');
          return;
        }
        // The browser gave up (the server refused the stream): retry from here, later.
        closeStream();
        setState('error');
        showStreamError('The live stream failed. Is the server running?');
        if (liveWanted) scheduleReconnect('The live stream failed.');
      },
      timeout: function () {
        closeStream();
        setState('error');
        showStreamError('The server did not open the live stream in time.');
        if (liveWanted) scheduleReconnect('The live stream did not open.');
      }
    });
    updateConnectionButton();
  }

  function disconnectLive(detail) {
    cancelReconnect();
    closeStream();
    setState('closed', detail);
    updateConnectionButton();
  }

  // Resolves once the live stream is open (or at once when there is none to wait for).
  function whenLiveOpen(timeoutMs) {
    return new Promise(function (resolve) {
      var s = stream;
      if (!s || s.kind !== 'live' || s.source.readyState === EventSource.OPEN) {
        resolve();
        return;
      }
      var done = false;
      var finish = function () {
        if (done) return;
        done = true;
        s.source.removeEventListener('open', finish);
        resolve();
      };
      s.source.addEventListener('open', finish);
      setTimeout(finish, timeoutMs);
    });
  }

  function updateConnectionButton() {
    var live = modeSelect.value === 'live';
    connectionButton.hidden = !live;
    var connected = live && liveWanted;
    connectionButton.textContent = connected ? 'Disconnect' : 'Connect';
    connectionButton.setAttribute('aria-pressed', 'false');
  }

  // ---- wiring --------------------------------------------------------------------------------

  function applyMode() {
    clearError();
    cancelReconnect();
    closeStream();
    if (modeSelect.value === 'live') {
      liveWanted = true;
      connectLive();
    } else {
      setState('idle', 'Burst mode: each message opens its own stream.');
    }
    updateConnectionButton();
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    clearError();
    var message = messageInput.value;
    var topic = currentTopic();
    if (message.trim() === '') {
      showError('Enter a message to send.', messageInput);
      return;
    }
    if (modeSelect.value === 'burst') {
      var problem = topicProblem(topic);
      if (problem) {
        showError(problem, topicInput);
        return;
      }
      startBurst(message, topic);
      return;
    }
    // Live: the event arrives on the live stream. If the topic changed, follow it first.
    if (liveWanted && (!stream || stream.topic !== topic) && !topicProblem(topic)) {
      connectLive();
    }
    sendButton.disabled = true;
    whenLiveOpen(OPEN_TIMEOUT_MS)
      .then(function () {
        return publish(message, topic);
      })
      .then(function (data) {
        messageInput.value = '';
        if (!stream || stream.kind !== 'live' || stream.topic !== topic) {
          addNotice('info', 'Published' + (data.id ? ' event ' + data.id : '') + ' to ' + topic +
            '. The live feed is not connected to that topic.');
        }
      }, function (err) {
        showError(err.message, fieldFor(err));
      })
      .then(function () {
        sendButton.disabled = false;
      });
  });

  modeSelect.addEventListener('change', applyMode);

  topicInput.addEventListener('change', function () {
    if (modeSelect.value !== 'live' || !liveWanted) return;
    if (stream && stream.topic === currentTopic()) return;
    clearError();
    connectLive();
  });

  connectionButton.addEventListener('click', function () {
    clearError();
    if (liveWanted) {
      liveWanted = false;
      disconnectLive('Disconnected. Press Connect to resume' +
        (lastEventId ? ' after event ' + lastEventId : '') + '.');
    } else {
      liveWanted = true;
      reconnectDelay = RECONNECT_MIN_MS;
      connectLive();
    }
  });

  clearButton.addEventListener('click', function () {
    while (feed.firstChild) feed.removeChild(feed.firstChild);
    feedEmpty.hidden = false;
    clearButton.hidden = true;
    messageInput.focus();
  });

  window.addEventListener('pagehide', function () {
    cancelReconnect();
    closeStream();
  });

  // Back/forward cache: the page comes back without its stream.
  window.addEventListener('pageshow', function (event) {
    if (event.persisted) applyMode();
  });

  // Say so when the hub asks for tokens, instead of failing silently: the page itself has none
  // (a deployment's own page sets the token cookie or sends Authorization headers).
  fetch('/api/ping', { headers: { 'Accept': 'application/json' } })
    .then(function (response) { return response.ok ? response.json() : null; })
    .then(function (ping) {
      var auth = ping && ping.auth;
      if (!auth) return;
      if (auth.subscriber_token_required) {
        addNotice('warning', 'This hub requires a subscriber token: streams opened from this page are refused (401) unless a token cookie (mercureAuthorization) is set for it.');
      } else if (auth.subscribe) {
        addNotice('info', 'This hub reads subscriber tokens: this page, which has none, receives public events only.');
      }
      if (auth.publish) {
        addNotice('warning', 'This hub requires a publisher token: publishing from this page is refused (401). Publish with a token, e.g. curl -H "Authorization: Bearer $(ssehub token --publish \'*\')".');
      }
    }, function () { /* the stream and publish paths report reachability themselves */ });

  // The browser may restore the form's previous mode on reload: honour it.
  if (modeSelect.value === 'live') applyMode();
  else updateConnectionButton();
})();
