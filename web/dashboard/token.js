// token.js - the admin token (SPEC §14): asked for once, in a form, when an
// API call answers 401; kept for this tab only (sessionStorage, else in
// memory); sent as "Authorization: Bearer", never in a URL.

import { refocus } from './dom.js';

const KEY = 'switchyard.adminToken';

export function createToken({ dialog, form, input, why, cancel }) {
  let memory = null;
  let pending = null; // the one question on screen, shared by every caller

  const storage = {
    get() {
      try {
        return sessionStorage.getItem(KEY) ?? memory;
      } catch {
        return memory;
      }
    },
    set(value) {
      memory = value;
      try {
        if (value === null) sessionStorage.removeItem(KEY);
        else sessionStorage.setItem(KEY, value);
      } catch {
        // storage refused (private mode): memory only
      }
    },
  };

  // Resolves with the token typed, or null when the operator cancels.
  function ask(message) {
    if (pending) return pending;
    pending = new Promise((resolve) => {
      const opener = document.activeElement;
      why.textContent = message;
      input.value = '';
      const done = (value) => {
        form.removeEventListener('submit', onSubmit);
        cancel.removeEventListener('click', onCancel);
        dialog.removeEventListener('cancel', onCancel);
        if (dialog.open) dialog.close();
        pending = null;
        refocus(opener);
        resolve(value);
      };
      const onSubmit = (e) => {
        e.preventDefault(); // never a real submission: the token stays out of URLs
        const value = input.value.trim();
        if (value) {
          storage.set(value);
          done(value);
        }
      };
      const onCancel = (e) => {
        e.preventDefault();
        done(null);
      };
      form.addEventListener('submit', onSubmit);
      cancel.addEventListener('click', onCancel);
      dialog.addEventListener('cancel', onCancel);
      dialog.showModal();
      input.focus();
    });
    return pending;
  }

  return {
    get: () => storage.get(),
    forget: () => storage.set(null),
    ask,
  };
}
